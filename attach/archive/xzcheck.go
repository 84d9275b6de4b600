package archive

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// xzCheck reads the structure of an .xz file before it is decoded (the
// .xz file format 1.0.4): every stream's footer and index, and every block
// header's filter chain. The decoder allocates each block's declared LZMA2
// dictionary up front, up to 4 GiB from a 60-byte file, so a dictionary
// above maxDict is refused here as a bomb, and a filter the decoder lacks
// as an unsupported method.
func xzCheck(ra io.ReaderAt, size, maxDict int64) error {
	end := size
	for streams := 0; end > 0; streams++ {
		// §2.2: stream padding is a multiple of four zero bytes.
		for end >= 4 && bytes.Equal(readHead(ra, size, end-4, 4), []byte{0, 0, 0, 0}) {
			end -= 4
		}
		if end == 0 && streams > 0 {
			return nil
		}
		start, err := xzCheckStream(ra, size, end, maxDict)
		if err != nil {
			return err
		}
		end = start
	}
	return nil
}

// xzCheckStream checks the stream that ends at end and returns its start.
func xzCheckStream(ra io.ReaderAt, size, end, maxDict int64) (int64, error) {
	if end < 24 {
		return 0, &kindError{ProblemTruncated, errors.New("stream shorter than its header and footer")}
	}
	foot := readHead(ra, size, end-12, 12)
	if string(foot[10:12]) != "YZ" {
		return 0, &kindError{ProblemTruncated, errors.New("no stream footer")}
	}
	indexSize := (int64(binary.LittleEndian.Uint32(foot[4:])) + 1) * 4
	indexStart := end - 12 - indexSize
	if indexStart < 12 {
		return 0, errors.New("index larger than the stream")
	}
	blocks, err := xzIndex(io.NewSectionReader(ra, indexStart, indexSize))
	if err != nil {
		return 0, fmt.Errorf("index: %w", err)
	}
	var total int64
	for _, b := range blocks {
		total += b
		if total > indexStart {
			return 0, errors.New("index describes more blocks than the stream holds")
		}
	}
	start := indexStart - total - 12
	if start < 0 || !bytes.Equal(readHead(ra, size, start, 6), []byte("\xfd7zXZ\x00")) {
		return 0, errors.New("stream header not where the index puts it")
	}
	off := start + 12
	for _, b := range blocks {
		if err := xzCheckBlock(readHead(ra, size, off, 1024), maxDict); err != nil {
			return 0, err
		}
		off += b
	}
	return start, nil
}

// xzIndex parses an index (§4) and returns each block's size in the
// stream (unpadded size rounded up to four).
func xzIndex(r *io.SectionReader) ([]int64, error) {
	br := &byteCounter{r: r}
	if b, err := br.ReadByte(); err != nil || b != 0 {
		return nil, errors.New("no index indicator")
	}
	n, err := binary.ReadUvarint(br)
	if err != nil || n > uint64(r.Size()/2) {
		return nil, errors.New("bad record count")
	}
	blocks := make([]int64, 0, n)
	for range n {
		unpadded, err1 := binary.ReadUvarint(br)
		_, err2 := binary.ReadUvarint(br)
		if err1 != nil || err2 != nil || unpadded < 5 || unpadded > 1<<62 {
			return nil, errors.New("bad record")
		}
		blocks = append(blocks, int64(unpadded+3)&^3)
	}
	return blocks, nil
}

// xzCheckBlock checks one block header (§3.1) and its filter flags.
func xzCheckBlock(h []byte, maxDict int64) error {
	if len(h) < 1 || h[0] == 0 {
		return errors.New("missing block header")
	}
	hl := (int(h[0]) + 1) * 4
	if len(h) < hl {
		return &kindError{ProblemTruncated, errors.New("block header cut short")}
	}
	br := bytes.NewReader(h[2 : hl-4])
	flags := h[1]
	if flags&0x40 != 0 {
		if _, err := binary.ReadUvarint(br); err != nil {
			return errors.New("bad block compressed size")
		}
	}
	if flags&0x80 != 0 {
		if _, err := binary.ReadUvarint(br); err != nil {
			return errors.New("bad block uncompressed size")
		}
	}
	for range int(flags&3) + 1 {
		id, err1 := binary.ReadUvarint(br)
		n, err2 := binary.ReadUvarint(br)
		if err1 != nil || err2 != nil || n > uint64(br.Len()) {
			return errors.New("bad filter flags")
		}
		props := make([]byte, n)
		_, _ = br.Read(props)
		if id != 0x21 {
			return &kindError{ProblemUnsupportedMethod, fmt.Errorf("filter 0x%x", id)}
		}
		if len(props) != 1 || props[0] > 40 {
			return errors.New("bad lzma2 properties")
		}
		if d := xzDict(props[0]); d > maxDict {
			return &kindError{ProblemBomb, fmt.Errorf("lzma2 dictionary of %d bytes exceeds %d", d, maxDict)}
		}
	}
	return nil
}

// xzDict decodes an LZMA2 dictionary size property (§5.3.1).
func xzDict(c byte) int64 {
	if c == 40 {
		return 1<<32 - 1
	}
	return int64(2|c&1) << (c/2 + 11)
}

// byteCounter adapts an io.Reader to io.ByteReader.
type byteCounter struct {
	r io.Reader
	b [1]byte
}

func (b *byteCounter) ReadByte() (byte, error) {
	_, err := io.ReadFull(b.r, b.b[:])
	return b.b[0], err
}
