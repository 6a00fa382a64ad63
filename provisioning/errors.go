package provisioning

import (
	"errors"
	"fmt"
)

// Sentinels callers branch on (wrapped; use errors.Is).
var (
	// ErrConflict: the board's state conflicts with the recipe (a foreign
	// key digest, flash encryption already on with a key this station does
	// not hold, a SECURE_VERSION above the release's, a write-protected
	// field that would have to change). The board is refused, never
	// "fixed"; nothing was burned by this run.
	ErrConflict = errors.New("provisioning: board conflicts with the recipe")
	// ErrIntake: the release was refused at intake (unsigned, tampered,
	// signed by a key the recipe does not trust, secure_version below the
	// floor, built for another chip). No board was touched.
	ErrIntake = errors.New("provisioning: release refused at intake")
	// ErrNotApproved: the operator (or the approval callback) declined the
	// irreversible steps. Nothing was burned.
	ErrNotApproved = errors.New("provisioning: irreversible steps not approved")
	// ErrVerify: a verification failed after writing (MD5, decrypted
	// signature, SPI probe, boot log, eFuse read-back).
	ErrVerify = errors.New("provisioning: verification failed")
	// ErrLink: the link to the board or the fixture failed (no sync, lost
	// link, timeout). The journal says where the run stopped; run again.
	ErrLink = errors.New("provisioning: link or fixture error")
	// ErrJournal: the journal cannot be used to resume (the device key it
	// needs is gone, or it belongs to another recipe).
	ErrJournal = errors.New("provisioning: journal cannot resume this board")
)

// ConflictError says what about the board conflicts with the recipe.
type ConflictError struct {
	Field  string // eFuse field or block ("BLOCK_KEY1", "SPI_BOOT_CRYPT_CNT")
	Reason string // plain words, never a key value
	Err    error  // the underlying cause (an *efuse.BurnError), if any
}

func (e *ConflictError) Error() string {
	s := fmt.Sprintf("provisioning: board refused: %s: %s", e.Field, e.Reason)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns ErrConflict and the cause.
func (e *ConflictError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrConflict, e.Err}
	}
	return []error{ErrConflict}
}

// IntakeError says which image of the release was refused and why.
type IntakeError struct {
	File   string // file in the release ("bootloader/bootloader.bin"); "" for the release as a whole
	Reason string
	Err    error
}

func (e *IntakeError) Error() string {
	s := "provisioning: intake refused"
	if e.File != "" {
		s += " " + e.File
	}
	s += ": " + e.Reason
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns ErrIntake and the cause.
func (e *IntakeError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrIntake, e.Err}
	}
	return []error{ErrIntake}
}
