package archive

import (
	"compress/bzip2"
	"fmt"
	"io"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/ulikunitz/xz"
)

// The single-stream compressors yield one entry, named from the gzip
// header or from the container's own name minus its extension.

func walkGzip(w *walker) error {
	zr, err := gzip.NewReader(io.NewSectionReader(w.ra, 0, w.size))
	if err != nil {
		w.problem(classify(err), "", fmt.Sprintf("gzip: %v", err))
		return nil
	}
	name := zr.Name
	if name == "" {
		name = stripExt(w.opt.Name)
	}
	e := Entry{Name: name, Size: -1, CompressedSize: w.size, Modified: zr.ModTime, Method: "deflate"}
	return w.emit(e, zr)
}

func walkBzip2(w *walker) error {
	e := Entry{Name: stripExt(w.opt.Name), Size: -1, CompressedSize: w.size, Method: "bzip2"}
	return w.emit(e, bzip2.NewReader(io.NewSectionReader(w.ra, 0, w.size)))
}

func walkXZ(w *walker) error {
	if err := xzCheck(w.ra, w.size, w.lim.MaxDictionary); err != nil {
		w.problem(classify(err), "", fmt.Sprintf("xz: %v", err))
		return nil
	}
	xr, err := xz.NewReader(io.NewSectionReader(w.ra, 0, w.size))
	if err != nil {
		w.problem(classify(err), "", fmt.Sprintf("xz: %v", err))
		return nil
	}
	e := Entry{Name: stripExt(w.opt.Name), Size: -1, CompressedSize: w.size, Method: "lzma2"}
	return w.emit(e, xr)
}

// stripExt names the content of a compressed file: "a.tar.gz" gives
// "a.tar", "a.tgz" gives "a.tar", "a.txt.bz2" gives "a.txt". A name with no
// known extension is kept; no name at all gives "data".
func stripExt(name string) string {
	lower := strings.ToLower(name)
	for _, s := range []struct{ ext, repl string }{
		{".tgz", ".tar"}, {".taz", ".tar"}, {".tbz2", ".tar"}, {".tbz", ".tar"}, {".tb2", ".tar"}, {".txz", ".tar"},
		{".gz", ""}, {".gzip", ""}, {".bz2", ""}, {".bzip2", ""}, {".xz", ""},
	} {
		if strings.HasSuffix(lower, s.ext) && len(name) > len(s.ext) {
			return name[:len(name)-len(s.ext)] + s.repl
		}
	}
	if name == "" {
		return "data"
	}
	return name
}
