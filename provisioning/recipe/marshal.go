package recipe

import (
	"go.yaml.in/yaml/v3"
)

// file is the YAML shape of a recipe with every field spelled out, in the
// order of the package documentation. It is used only to write recipes.
type file struct {
	Version         int          `yaml:"version"`
	Name            string       `yaml:"name,omitempty"`
	Chip            string       `yaml:"chip"`
	Release         fileRelease  `yaml:"release"`
	SecureBoot      fileSB       `yaml:"secure_boot"`
	FlashEncryption fileFE       `yaml:"flash_encryption"`
	AntiRollback    fileAR       `yaml:"anti_rollback"`
	Lockdown        fileLockdown `yaml:"lockdown"`
	WriteMode       string       `yaml:"write_mode"`
	Verify          fileVerify   `yaml:"verify"`
	Escrow          fileEscrow   `yaml:"escrow"`
	// Subdevices is a map: yaml writes its keys sorted, so the output does
	// not depend on the order the recipe listed them in.
	Subdevices map[string]fileSubdevice `yaml:"subdevices,omitempty"`
}

type fileSubdevice struct {
	Link string `yaml:"link"`
	Chip string `yaml:"chip"`
}

type fileRelease struct {
	Path    string   `yaml:"path"`
	Format  string   `yaml:"format"`
	Trust   []string `yaml:"trust,omitempty"`
	CRLs    []string `yaml:"crls,omitempty"`
	Signers []string `yaml:"signers,omitempty"`
}

type fileSB struct {
	Keys                []string `yaml:"keys"`
	Revoke              []int    `yaml:"revoke,flow"`
	KeepUnusedSlotsOpen bool     `yaml:"keep_unused_slots_open"`
}

type fileFE struct {
	Scheme string `yaml:"scheme"`
	Mode   string `yaml:"mode"`
}

type fileAR struct {
	Floor int `yaml:"floor"`
}

type fileLockdown struct {
	JTAG             bool   `yaml:"jtag"`
	DirectBoot       bool   `yaml:"direct_boot"`
	DownloadCaches   bool   `yaml:"download_caches"`
	ManualEncryption bool   `yaml:"manual_encryption"`
	Download         string `yaml:"download"`
}

type fileVerify struct {
	MD5              bool   `yaml:"md5"`
	DecryptAndVerify bool   `yaml:"decrypt_and_verify"`
	SPIProbe         bool   `yaml:"spi_probe"`
	BootCheck        bool   `yaml:"boot_check"`
	BootTimeout      string `yaml:"boot_timeout"`
}

type fileEscrow struct {
	Enabled   bool   `yaml:"enabled"`
	Recipient string `yaml:"recipient,omitempty"`
}

func paths(refs []Ref) []string {
	var out []string
	for _, r := range refs {
		out = append(out, r.Path)
	}
	return out
}

// Marshal writes the recipe as YAML with every field spelled out (defaults
// included), as Parse reads it back. Resolved keys and certificates are not
// written; the file paths are.
func (r *Recipe) Marshal() ([]byte, error) {
	f := file{
		Version: Version,
		Name:    r.Name,
		Chip:    r.Chip.Arg(),
		Release: fileRelease{
			Path: r.Release.Path.Path, Format: string(r.Release.Format),
			Trust: paths(r.Release.Trust), CRLs: paths(r.Release.CRLs), Signers: r.Release.Signers,
		},
		SecureBoot:      fileSB{Keys: paths(r.SecureBoot.Keys), Revoke: r.SecureBoot.Revoke, KeepUnusedSlotsOpen: r.SecureBoot.KeepUnusedSlotsOpen},
		FlashEncryption: fileFE{Scheme: r.FlashEncryption.Scheme.String(), Mode: r.FlashEncryption.Mode},
		AntiRollback:    fileAR{Floor: r.AntiRollback.Floor},
		Lockdown: fileLockdown{
			JTAG: r.Lockdown.JTAG, DirectBoot: r.Lockdown.DirectBoot, DownloadCaches: r.Lockdown.DownloadCaches,
			ManualEncryption: r.Lockdown.ManualEncryption, Download: string(r.Lockdown.Download),
		},
		WriteMode: string(r.WriteMode),
		Verify: fileVerify{
			MD5: r.Verify.MD5, DecryptAndVerify: r.Verify.DecryptAndVerify, SPIProbe: r.Verify.SPIProbe,
			BootCheck: r.Verify.BootCheck, BootTimeout: r.Verify.BootTimeout.String(),
		},
		Escrow: fileEscrow{Enabled: r.Escrow.Enabled, Recipient: r.Escrow.Recipient},
	}
	for _, sd := range r.Subdevices {
		if f.Subdevices == nil {
			f.Subdevices = map[string]fileSubdevice{}
		}
		f.Subdevices[sd.Name] = fileSubdevice{Link: sd.Link, Chip: sd.Chip.Arg()}
	}
	if f.SecureBoot.Revoke == nil {
		f.SecureBoot.Revoke = []int{}
	}
	return yaml.Marshal(&f)
}
