package archive

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// readSeed reads one committed fuzz corpus file.
func readSeed(t *testing.T, path string) []byte {
	t.Helper()
	s := string(readFile(t, path))
	i := strings.Index(s, "[]byte(")
	if i < 0 {
		t.Fatalf("%s: not a []byte corpus entry", path)
	}
	b, err := strconv.Unquote(strings.TrimSuffix(strings.TrimSpace(s[i+7:]), ")"))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return []byte(b)
}

// TestMutatedSeeds walks deterministic mutations (bit flips, extreme
// bytes, 0xffffffff words) of the committed seeds of every reader and
// checks the limits, like the fuzz targets, in every normal test run. It
// found a division by zero in the PPMd decoder that used to escape as a
// panic; see also TestDecoderPanic.
func TestMutatedSeeds(t *testing.T) {
	type seed struct {
		f    Format
		data []byte
	}
	var seeds []seed
	for dir, f := range map[string]Format{"FuzzZip": Zip, "Fuzz7z": SevenZip, "FuzzISO": ISO, "FuzzFAT": FAT} {
		files, _ := filepath.Glob(filepath.Join("testdata", "fuzz", dir, "*"))
		for _, path := range files {
			seeds = append(seeds, seed{f, readSeed(t, path)})
		}
	}
	files := []rarFile{{name: "d", dir: true}, {name: "d/a.txt", data: []byte("hello rar")}, {name: "b", data: make([]byte, 300)}}
	seeds = append(seeds,
		seed{RAR, buildRAR5(t, files, rar5Opts{solid: true})},
		seed{RAR, buildRAR5(t, files, rar5Opts{password: "infected", encryptHeaders: true, kdfLog: 4})},
		seed{RAR, buildRAR4(t, files, false)},
		seed{RAR, buildRAR4Enc(t, files, false, "infected", true)},
		seed{CAB, buildCAB(t, files[1:], cabMSZIP)},
		seed{Zip, overlapZip(t, 3)})
	rounds := 150
	if n, err := strconv.Atoi(os.Getenv("MAILGUARD_MUTATIONS")); err == nil {
		rounds = n // a longer run: MAILGUARD_MUTATIONS=5000
	}
	r := rand.New(rand.NewPCG(7, 9))
	for _, s := range seeds {
		for range rounds {
			d := append([]byte{}, s.data...)
			for range 1 + r.IntN(8) {
				switch r.IntN(3) {
				case 0:
					d[r.IntN(len(d))] ^= byte(1 << r.IntN(8))
				case 1:
					d[r.IntN(len(d))] = []byte{0, 0xff, 0x7f, 0x80, 1}[r.IntN(5)]
				default:
					copy(d[r.IntN(len(d)-4):], []byte{0xff, 0xff, 0xff, 0xff})
				}
			}
			fuzzWalk(t, s.f, d)
		}
	}
}

// TestDecoderPanic: PPMd data corrupted at each position of its packed
// stream; the decoder panics on some, and that must come out as a
// problem, not a crash.
func TestDecoderPanic(t *testing.T) {
	seed := readSeed(t, filepath.Join("testdata", "fuzz", "Fuzz7z", "ppmd"))
	panics := 0
	for i := 32; i < min(len(seed), 32+64); i++ {
		d := append([]byte{}, seed...)
		d[i] ^= 0xa5
		w := walkBytes(t, SevenZip, d, Options{SevenZipPath: "-"})
		for _, p := range w.res.Problems {
			if strings.Contains(p.Detail, "decoder failed") {
				panics++
			}
		}
	}
	// stangelandcl/ppmd v0.1.1 divides by zero on 3 of these; if a newer
	// version stops panicking, this test no longer covers the recovery.
	if panics == 0 {
		t.Errorf("no decoder panic provoked: the recovery path is untested")
	}
}
