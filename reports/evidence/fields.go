package evidence

import (
	"reflect"
	"slices"
	"strings"
	"time"
)

// FieldPaths lists the JSON paths of every value in a Record, dotted, with
// list elements implied ("images.plaintext_sha256", "efuse.after.fields").
// Maps are leaves: "efuse.after.fields.SPI_BOOT_CRYPT_CNT" resolves through
// HasField. The IEC 62443 matrix is checked against this list.
func FieldPaths() []string {
	var out []string
	walkFields(reflect.TypeFor[Record](), "", &out)
	slices.Sort(out)
	return out
}

// HasField reports whether path names a value of the Record schema. A path
// may go one step into a map ("efuse.after.fields.SECURE_BOOT_EN"); the key
// must then be a plausible eFuse field name (upper case, digits, _).
func HasField(path string) bool {
	t := reflect.TypeFor[Record]()
	parts := strings.Split(path, ".")
	for i, p := range parts {
		for t.Kind() == reflect.Slice || t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch {
		case t.Kind() == reflect.Map:
			return i == len(parts)-1 && mapKey(p)
		case t.Kind() != reflect.Struct || isLeafStruct(t):
			return false
		}
		f, ok := fieldByTag(t, p)
		if !ok {
			return false
		}
		t = f
	}
	return true
}

func mapKey(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func fieldByTag(t reflect.Type, name string) (reflect.Type, bool) {
	for f := range t.Fields() {
		if tag := jsonName(f); tag == name {
			return f.Type, true
		}
	}
	return nil, false
}

func jsonName(f reflect.StructField) string {
	tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if tag == "-" || !f.IsExported() {
		return ""
	}
	if tag == "" {
		return f.Name
	}
	return tag
}

// isLeafStruct: structs written as one JSON value.
func isLeafStruct(t reflect.Type) bool {
	return t == reflect.TypeFor[time.Time]() || t == reflect.TypeFor[KeyDigest]()
}

func walkFields(t reflect.Type, prefix string, out *[]string) {
	for t.Kind() == reflect.Slice || t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || isLeafStruct(t) {
		if prefix != "" {
			*out = append(*out, prefix)
		}
		return
	}
	if prefix != "" {
		*out = append(*out, prefix)
	}
	for f := range t.Fields() {
		name := jsonName(f)
		if name == "" {
			continue
		}
		p := name
		if prefix != "" {
			p = prefix + "." + name
		}
		walkFields(f.Type, p, out)
	}
}
