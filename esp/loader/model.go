package loader

import (
	"encoding/binary"
	"fmt"
)

// A model's answer to OpModelKind: the magic "FSLN" and a kind code, 8
// result bytes before the status. A magic keeps a stray or damaged frame
// from being taken for a model's word.
const (
	modelMagic = "FSLN"
	// ModelKindLen is the length of the OpModelKind result.
	ModelKindLen = 8
)

// Model kinds a link can announce (OpModelKind).
const (
	ModelVirtual = "virtual" // Fuseline's virtual board
)

var modelCodes = map[string]uint32{ModelVirtual: 1}

// EncodeModelKind is the OpModelKind result of a model of kind (one of
// the Model constants).
func EncodeModelKind(kind string) ([]byte, error) {
	code, ok := modelCodes[kind]
	if !ok {
		return nil, fmt.Errorf("loader: model kind %q unknown", kind)
	}
	return binary.LittleEndian.AppendUint32([]byte(modelMagic), code), nil
}

// ParseModelKind reads an OpModelKind result: the model's kind, or a
// FormatError for anything else (a wrong length, no magic, a code this
// host does not know).
func ParseModelKind(result []byte) (string, error) {
	if len(result) != ModelKindLen {
		return "", &FormatError{What: "model kind", Offset: 0, Want: fmt.Sprintf("%d bytes", ModelKindLen), Got: fmt.Sprintf("%d bytes", len(result))}
	}
	if string(result[:4]) != modelMagic {
		return "", &FormatError{What: "model kind magic", Offset: 0, Want: fmt.Sprintf("%q", modelMagic), Got: fmt.Sprintf("% x", result[:4])}
	}
	code := binary.LittleEndian.Uint32(result[4:])
	for k, c := range modelCodes {
		if c == code {
			return k, nil
		}
	}
	return "", &FormatError{What: "model kind code", Offset: 4, Want: "a known kind", Got: fmt.Sprintf("%d", code)}
}
