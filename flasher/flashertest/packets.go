package flashertest

import (
	"fuseline/esp/loader"
)

// Req is an unframed request with no checksum.
func Req(op loader.Op, data []byte) []byte {
	return loader.EncodeRequest(loader.Request{Op: op, Data: data})
}

// DataReq is an unframed *_DATA request with its checksum.
func DataReq(op loader.Op, seq uint32, data []byte) []byte {
	return loader.EncodeRequest(loader.DataRequest(op, seq, data))
}

// ROM is a successful ROM answer: result + 4 zero status bytes.
func ROM(op loader.Op, value uint32, result []byte) []byte {
	return loader.EncodeResponse(loader.Response{Op: op, Value: value, Data: append(append([]byte(nil), result...), loader.ROMStatus(false, 0)...)})
}

// ROMFail is a ROM failure: status 01 code 00 00.
func ROMFail(op loader.Op, code loader.ROMCode) []byte {
	return loader.EncodeResponse(loader.Response{Op: op, Data: loader.ROMStatus(true, code)})
}

// Stub is a successful stub answer: result + 00 00.
func Stub(op loader.Op, value uint32, result []byte) []byte {
	return loader.EncodeResponse(loader.Response{Op: op, Value: value, Data: append(append([]byte(nil), result...), loader.StubStatus(loader.StubOK)...)})
}

// StubFail is a stub failure: code 00.
func StubFail(op loader.Op, code loader.StubCode) []byte {
	return loader.EncodeResponse(loader.Response{Op: op, Data: loader.StubStatus(code)})
}

// SyncReplies are the 8 answers to SYNC: value 0x20120707 from the ROM,
// 0 from a stub.
func SyncReplies(rom bool) [][]byte {
	out := make([][]byte, loader.SyncReplies)
	for i := range out {
		if rom {
			out[i] = ROM(loader.OpSync, loader.SyncValue, nil)
		} else {
			out[i] = Stub(loader.OpSync, 0, nil)
		}
	}
	return out
}

// SyncReq is the SYNC request.
func SyncReq() []byte { return Req(loader.OpSync, loader.SyncPayload()) }

// ReadReg is a READ_REG exchange answered by the ROM (or stub) with v.
func ReadReg(addr, v uint32, rom bool) Step {
	reply := ROM(loader.OpReadReg, v, nil)
	if !rom {
		reply = Stub(loader.OpReadReg, v, nil)
	}
	return Step{Want: Req(loader.OpReadReg, loader.EncodeReadReg(addr)), Reply: [][]byte{reply}}
}

// WriteReg is a WRITE_REG exchange of the records, answered OK.
func WriteReg(rom bool, recs ...loader.RegWrite) Step {
	reply := ROM(loader.OpWriteReg, 0, nil)
	if !rom {
		reply = Stub(loader.OpWriteReg, 0, nil)
	}
	return Step{Want: Req(loader.OpWriteReg, loader.EncodeWriteReg(recs...)), Reply: [][]byte{reply}}
}

// OK is an exchange of req answered with success and no result.
func OK(req []byte, rom bool) Step {
	r, _ := loader.DecodeRequest(req)
	reply := ROM(r.Op, 0, nil)
	if !rom {
		reply = Stub(r.Op, 0, nil)
	}
	return Step{Want: req, Reply: [][]byte{reply}}
}
