//go:build !unix

package scan

import (
	"errors"
	"io"
	"os"
)

func fileOf(io.ReaderAt) (*os.File, int64, bool) { return nil, 0, false }

func mapFile(*os.File, int64, int64) ([]byte, func(), error) {
	return nil, nil, errors.New("scan: memory mapping not supported")
}
