package evidence

import (
	"io/fs"
)

// File is one evidence file read from a directory or bundle.
type File struct {
	Path   string // slash path inside the directory
	Data   []byte // the file bytes (what was signed)
	Record *Record
}

// ReadFiles parses every evidence file of fsys (a bundle directory or a
// station's data directory; EvidencePaths says which files are evidence), in
// path order. A file that is not a valid record fails the whole read, with
// an error naming it: a report built from part of a lot would mislead.
func ReadFiles(fsys fs.FS) ([]File, error) {
	var paths []string
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == BundleImagesDir {
			return fs.SkipDir
		}
		if d.IsDir() && d.Name() == BundleEvidenceDir {
			paths = append(paths, p+"/")
		}
		if d.Type().IsRegular() {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []File
	for _, p := range EvidencePaths(paths) {
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return nil, &FileError{File: p, Err: err}
		}
		r, err := Parse(data)
		if err != nil {
			return nil, &FileError{File: p, Err: err}
		}
		out = append(out, File{Path: p, Data: data, Record: r})
	}
	return out, nil
}

// Records returns the records of files.
func Records(files []File) []*Record {
	out := make([]*Record, len(files))
	for i, f := range files {
		out[i] = f.Record
	}
	return out
}
