package archive

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
)

func walkTar(w *walker) error {
	tr := tar.NewReader(io.NewSectionReader(w.ra, 0, w.size))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil && !errors.Is(err, tar.ErrInsecurePath) {
			w.problem(classify(err), "", fmt.Sprintf("tar: %v", err))
			return nil
		}
		e := Entry{Name: h.Name, Size: h.Size, CompressedSize: h.Size, Modified: h.ModTime, Method: "store"}
		var r io.Reader = tr
		switch h.Typeflag {
		case tar.TypeDir:
			e.Dir = true
		case tar.TypeSymlink, tar.TypeLink:
			e.Link, r = h.Linkname, nil
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			r = nil
		case tar.TypeGNUSparse:
			e.CompressedSize = -1 // the holes are not stored
		}
		// Other type flags are regular files, as POSIX tells extractors to
		// treat unknown types: their content is delivered.
		if err := w.emit(e, r); err != nil {
			return err
		}
	}
}
