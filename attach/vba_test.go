package attach

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"math/rand"
	"strings"
	"testing"
)

// compressVBA is an MS-OVBA §2.4.1.3.6 compressor (greedy longest match
// within the chunk), used to build test documents.
func compressVBA(in []byte) []byte {
	out := []byte{0x01}
	for start := 0; start < len(in); start += 4096 {
		chunk := in[start:min(start+4096, len(in))]
		var body []byte
		pos := 0
		for pos < len(chunk) {
			flagAt := len(body)
			body = append(body, 0)
			for bit := 0; bit < 8 && pos < len(chunk); bit++ {
				diff := pos
				bits := 4
				for (1 << bits) < diff {
					bits++
				}
				maxLen := (0xffff >> bits) + 3
				bestLen, bestOff := 0, 0
				for cand := max(0, pos-(1<<bits)); cand < pos; cand++ {
					l := 0
					for pos+l < len(chunk) && l < maxLen && chunk[cand+l] == chunk[pos+l] {
						l++
					}
					if l > bestLen {
						bestLen, bestOff = l, pos-cand
					}
				}
				if bestLen >= 3 {
					tok := uint16(bestOff-1)<<(16-bits) | uint16(bestLen-3)
					body = binary.LittleEndian.AppendUint16(body, tok)
					body[flagAt] |= 1 << bit
					pos += bestLen
				} else {
					body = append(body, chunk[pos])
					pos++
				}
			}
		}
		if len(body) > 4096 && len(chunk) == 4096 {
			// MS-OVBA §2.4.1.3.10: store incompressible chunks raw.
			out = binary.LittleEndian.AppendUint16(out, 0x0fff|0x3<<12)
			out = append(out, chunk...)
			continue
		}
		hdr := uint16(len(body)+2-3) | 0x3<<12 | 0x8000
		out = binary.LittleEndian.AppendUint16(out, hdr)
		out = append(out, body...)
	}
	return out
}

func TestDecompressVBASpecExample(t *testing.T) {
	// MS-OVBA §3.2.1: a chunk in which nothing compresses.
	in, _ := hex.DecodeString("0119B00061626364656667680069" + "6A6B6C6D6E6F7000717273747576" + "2E")
	got, err := DecompressVBA(in, 1<<20)
	if err != nil || string(got) != "abcdefghijklmnopqrstuv." {
		t.Errorf("§3.2.1: %q, %v", got, err)
	}
	if _, err := DecompressVBA([]byte{0x02, 0, 0}, 100); err == nil {
		t.Error("no error for a bad signature byte")
	}
}

func TestVBARoundTrip(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	src := []byte(strings.Repeat("Attribute VB_Name = \"Module1\"\r\nSub AutoOpen()\r\n  Shell \"cmd /c calc\"\r\nEnd Sub\r\n", 300))
	random := make([]byte, 10000)
	rng.Read(random)
	for _, in := range [][]byte{src, random, []byte("a"), bytes.Repeat([]byte{0}, 9000)} {
		got, err := DecompressVBA(compressVBA(in), 1<<20)
		if err != nil || !bytes.Equal(got, in) {
			t.Errorf("round trip of %d bytes: got %d bytes, %v", len(in), len(got), err)
		}
	}
	if _, err := DecompressVBA(compressVBA(src), 100); err == nil {
		t.Error("no error past the output cap")
	}
}

func FuzzDecompressVBA(f *testing.F) {
	f.Add(compressVBA([]byte("Attribute VB_Name = \"x\"\r\nSub AutoOpen()\r\nEnd Sub")))
	f.Add([]byte{1, 0x19, 0xb0, 0, 'a'})
	f.Fuzz(func(t *testing.T, b []byte) {
		out, _ := DecompressVBA(b, 1<<16)
		if len(out) > 1<<16 {
			t.Fatalf("output %d past cap", len(out))
		}
	})
}
