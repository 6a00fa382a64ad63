package evidence

import (
	"io/fs"
	"slices"
	"strings"
)

// File is one evidence file read from a directory or bundle.
type File struct {
	Path   string // slash path inside the directory
	Data   []byte // the file bytes (what was signed)
	Record *Record
}

// ReadFiles parses every evidence file (*.json outside images/) of fsys, in
// path order. A file that is not a valid record fails the whole read, with
// an error naming it: a report built from part of a lot would mislead.
func ReadFiles(fsys fs.FS) ([]File, error) {
	var out []File
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p == BundleImagesDir || d.IsDir() && strings.HasSuffix(p, "/"+BundleImagesDir) {
			return fs.SkipDir
		}
		if !d.Type().IsRegular() || !strings.HasSuffix(p, ".json") {
			return nil
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return &FileError{File: p, Err: err}
		}
		r, err := Parse(data)
		if err != nil {
			return &FileError{File: p, Err: err}
		}
		out = append(out, File{Path: p, Data: data, Record: r})
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
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
