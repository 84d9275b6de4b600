package scan

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// benchCorpus writes about 50 MB of mixed files: mail text, HTML, UTF-16
// office-like data, PDFs, random (compressed-looking) binaries and a few
// files the starter rules detect. The content is deterministic, so the
// same corpus can be given to the yara CLI: set MAILGUARD_SCAN_BENCH_DIR to
// keep it in that directory.
func benchCorpus(b *testing.B) (dir string, files []string, total int64) {
	b.Helper()
	dir = os.Getenv("MAILGUARD_SCAN_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	words := strings.Fields("invoice payment the and meeting report quarterly results please find attached " +
		"document regards network server account shipment order delivery confirm schedule budget Tokyo Osaka " +
		"contract review signed approval http www example com password archive update security")
	sentence := func(n int) string {
		var sb strings.Builder
		for sb.Len() < n {
			sb.WriteString(words[rng.IntN(len(words))])
			sb.WriteByte(' ')
			if rng.IntN(12) == 0 {
				sb.WriteString(".\r\n")
			}
		}
		return sb.String()
	}
	kinds := []func(size int) []byte{
		func(n int) []byte { return []byte(sentence(n)) },
		func(n int) []byte {
			return []byte("<html><body><table><tr><td><a href=\"https://www.example.com/a\">" + sentence(n) + "</a></td></tr></table></body></html>")
		},
		func(n int) []byte { return utf16le(sentence(n / 2)) },
		func(n int) []byte { return pdfFile("", sentence(n)) },
		func(n int) []byte {
			p := make([]byte, n)
			for i := range p {
				p[i] = byte(rng.Uint32())
			}
			return p
		},
	}
	for i := 0; total < 50<<20; i++ {
		size := 10<<10 + rng.IntN(2<<20)
		data := kinds[i%len(kinds)](size)
		if i%97 == 0 {
			data = []byte(eicar)
		}
		name := filepath.Join(dir, fmt.Sprintf("f%04d.bin", i))
		if err := os.WriteFile(name, data, 0o644); err != nil {
			b.Fatal(err)
		}
		files = append(files, name)
		total += int64(len(data))
	}
	return dir, files, total
}

// BenchmarkScanCorpus scans the corpus from disk (memory-mapped) with the
// default starter rules on GOMAXPROCS goroutines, like `yara -p N -r`.
func BenchmarkScanCorpus(b *testing.B) {
	r, _, err := Compile([]string{"../rules/*.yar"}, ".")
	if err != nil || r == nil {
		b.Fatalf("compile: %v", err)
	}
	e := NewEngine(r, 0)
	defer e.Close()
	_, files, total := benchCorpus(b)
	workers := runtime.GOMAXPROCS(0)
	b.SetBytes(total)
	cpu := cpuTime()
	b.ResetTimer()
	for b.Loop() {
		var wg sync.WaitGroup
		next := make(chan string)
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for name := range next {
					if err := scanFile(e, name); err != nil {
						b.Error(err)
					}
				}
			}()
		}
		for _, f := range files {
			next <- f
		}
		close(next)
		wg.Wait()
	}
	reportCPU(b, cpu, total)
}

// cpuTime is the process's user+system CPU time in seconds. On a shared
// machine it is a steadier measure than wall time.
func cpuTime() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// reportCPU adds MB scanned per CPU second as a metric.
func reportCPU(b *testing.B, start float64, bytesPerOp int64) {
	if used := cpuTime() - start; used > 0 {
		b.ReportMetric(float64(bytesPerOp)*float64(b.N)/1e6/used, "MB/cpu-s")
	}
}

func scanFile(e *Engine, name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	_, err = e.Scan(context.Background(), f, st.Size(), Vars{Filename: filepath.Base(name)})
	return err
}

// BenchmarkScanBytes scans one 1 MiB in-memory text part.
func BenchmarkScanBytes(b *testing.B) {
	r, _, err := Compile([]string{"../rules/*.yar"}, ".")
	if err != nil || r == nil {
		b.Fatalf("compile: %v", err)
	}
	e := NewEngine(r, 0)
	defer e.Close()
	data := []byte(strings.Repeat("Please find the quarterly report attached. Regards, Accounting\r\n", 1<<14))
	b.SetBytes(int64(len(data)))
	cpu := cpuTime()
	for b.Loop() {
		if _, err := e.ScanBytes(context.Background(), data, Vars{Filename: "body.txt"}); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu, int64(len(data)))
}
