package attach

import (
	"encoding/binary"
	"sort"
	"strings"
	"unicode/utf16"
)

// A minimal compound file (MS-CFB v3) writer for building test documents:
// streams under 4096 bytes go to the mini stream, storages are implied by
// the paths, siblings are chained through their right links.

type cfbEntry struct {
	path string // "Macros/VBA/dir"
	data []byte
}

type cfbNode struct {
	name     string
	stream   bool
	data     []byte
	children []*cfbNode
	id       uint32
	start    uint32
	size     uint32
}

const (
	cfbFree     = 0xFFFFFFFF
	cfbEnd      = 0xFFFFFFFE
	cfbFATSect  = 0xFFFFFFFD
	cfbNoStream = 0xFFFFFFFF
)

func buildCFB(entries []cfbEntry, clsid []byte) []byte {
	root := &cfbNode{name: "Root Entry"}
	for _, e := range entries {
		n := root
		parts := strings.Split(e.path, "/")
		for i, p := range parts {
			var next *cfbNode
			for _, c := range n.children {
				if c.name == p {
					next = c
				}
			}
			if next == nil {
				next = &cfbNode{name: p}
				n.children = append(n.children, next)
			}
			if i == len(parts)-1 {
				next.stream, next.data = true, e.data
			}
			n = next
		}
	}
	var nodes []*cfbNode
	var number func(n *cfbNode)
	number = func(n *cfbNode) {
		n.id = uint32(len(nodes))
		nodes = append(nodes, n)
		sort.Slice(n.children, func(i, j int) bool { return n.children[i].name < n.children[j].name })
		for _, c := range n.children {
			number(c)
		}
	}
	number(root)

	// Mini stream and big streams.
	var mini []byte
	var miniFAT []uint32
	var big [][]byte
	var bigNodes []*cfbNode
	for _, n := range nodes {
		if !n.stream {
			continue
		}
		n.size = uint32(len(n.data))
		if len(n.data) >= 4096 {
			big = append(big, n.data)
			bigNodes = append(bigNodes, n)
			continue
		}
		if len(n.data) == 0 {
			n.start = cfbEnd
			continue
		}
		n.start = uint32(len(mini) / 64)
		cnt := (len(n.data) + 63) / 64
		for i := 0; i < cnt; i++ {
			if i == cnt-1 {
				miniFAT = append(miniFAT, cfbEnd)
			} else {
				miniFAT = append(miniFAT, uint32(len(miniFAT)+1))
			}
		}
		mini = append(mini, n.data...)
		mini = append(mini, make([]byte, cnt*64-len(n.data))...)
	}
	secs := func(n int) int { return (n + 511) / 512 }
	dirSecs := secs(len(nodes) * 128)
	miniFATSecs := secs(len(miniFAT) * 4)
	miniSecs := secs(len(mini))
	bigSecs := 0
	for _, b := range big {
		bigSecs += secs(len(b))
	}
	other := dirSecs + miniFATSecs + miniSecs + bigSecs
	fatSecs := 1
	for (other+fatSecs)*4 > fatSecs*512 {
		fatSecs++
	}
	total := other + fatSecs
	fat := make([]uint32, fatSecs*128)
	for i := range fat {
		fat[i] = cfbFree
	}
	next := 0
	chain := func(n int) uint32 {
		if n == 0 {
			return cfbEnd
		}
		start := next
		for i := 0; i < n; i++ {
			if i == n-1 {
				fat[next] = cfbEnd
			} else {
				fat[next] = uint32(next + 1)
			}
			next++
		}
		return uint32(start)
	}
	dirStart := chain(dirSecs)
	miniFATStart := chain(miniFATSecs)
	miniStart := chain(miniSecs)
	for i, b := range big {
		bigNodes[i].start = chain(secs(len(b)))
	}
	fatStart := next
	for i := 0; i < fatSecs; i++ {
		fat[next] = cfbFATSect
		next++
	}
	_ = total

	hdr := make([]byte, 512)
	copy(hdr, oleMagic)
	binary.LittleEndian.PutUint16(hdr[24:], 0x3E)
	binary.LittleEndian.PutUint16(hdr[26:], 3)
	binary.LittleEndian.PutUint16(hdr[28:], 0xFFFE)
	binary.LittleEndian.PutUint16(hdr[30:], 9)
	binary.LittleEndian.PutUint16(hdr[32:], 6)
	binary.LittleEndian.PutUint32(hdr[44:], uint32(fatSecs))
	binary.LittleEndian.PutUint32(hdr[48:], dirStart)
	binary.LittleEndian.PutUint32(hdr[56:], 4096)
	binary.LittleEndian.PutUint32(hdr[60:], miniFATStart)
	binary.LittleEndian.PutUint32(hdr[64:], uint32(miniFATSecs))
	binary.LittleEndian.PutUint32(hdr[68:], cfbEnd)
	for i := 0; i < 109; i++ {
		v := uint32(cfbFree)
		if i < fatSecs {
			v = uint32(fatStart + i)
		}
		binary.LittleEndian.PutUint32(hdr[76+4*i:], v)
	}
	root.start, root.size = miniStart, uint32(len(mini))
	if len(mini) == 0 {
		root.start = cfbEnd
	}

	dir := make([]byte, dirSecs*512)
	for k := len(nodes); k < dirSecs*4; k++ {
		e := dir[k*128:]
		binary.LittleEndian.PutUint32(e[68:], cfbNoStream)
		binary.LittleEndian.PutUint32(e[72:], cfbNoStream)
		binary.LittleEndian.PutUint32(e[76:], cfbNoStream)
	}
	right := map[*cfbNode]uint32{}
	for _, n := range nodes {
		for i := 0; i+1 < len(n.children); i++ {
			right[n.children[i]] = n.children[i+1].id
		}
	}
	for _, n := range nodes {
		e := dir[n.id*128:]
		u := utf16.Encode([]rune(n.name))
		for i, c := range u {
			binary.LittleEndian.PutUint16(e[2*i:], c)
		}
		binary.LittleEndian.PutUint16(e[64:], uint16(2*len(u)+2))
		switch {
		case n == root:
			e[66] = 5
			copy(e[80:96], clsid)
		case n.stream:
			e[66] = 2
		default:
			e[66] = 1
		}
		e[67] = 1
		binary.LittleEndian.PutUint32(e[68:], cfbNoStream)
		binary.LittleEndian.PutUint32(e[72:], cfbNoStream)
		binary.LittleEndian.PutUint32(e[76:], cfbNoStream)
		if len(n.children) > 0 {
			binary.LittleEndian.PutUint32(e[76:], n.children[0].id)
		}
		if r, ok := right[n]; ok {
			binary.LittleEndian.PutUint32(e[72:], r)
		}
		binary.LittleEndian.PutUint32(e[116:], n.start)
		binary.LittleEndian.PutUint32(e[120:], n.size)
	}
	out := append([]byte(nil), hdr...)
	pad := func(b []byte) {
		out = append(out, b...)
		if r := len(b) % 512; r != 0 {
			out = append(out, make([]byte, 512-r)...)
		}
	}
	pad(dir)
	mf := make([]byte, len(miniFAT)*4)
	for i, v := range miniFAT {
		binary.LittleEndian.PutUint32(mf[4*i:], v)
	}
	// Unused mini FAT slots must be free.
	for len(mf)%512 != 0 {
		mf = binary.LittleEndian.AppendUint32(mf, cfbFree)
	}
	pad(mf)
	pad(mini)
	for _, b := range big {
		pad(b)
	}
	fb := make([]byte, len(fat)*4)
	for i, v := range fat {
		binary.LittleEndian.PutUint32(fb[4*i:], v)
	}
	pad(fb)
	return out
}

// vbaDir builds a decompressed dir stream for the given module names.
func vbaDir(modules ...string) []byte {
	var d []byte
	rec := func(id uint16, data []byte) {
		d = binary.LittleEndian.AppendUint16(d, id)
		d = binary.LittleEndian.AppendUint32(d, uint32(len(data)))
		d = append(d, data...)
	}
	rec(0x0001, []byte{1, 0, 0, 0}) // PROJECTSYSKIND win32
	d = binary.LittleEndian.AppendUint16(d, 0x0009)
	d = binary.LittleEndian.AppendUint32(d, 4)
	d = append(d, 1, 0, 0, 0, 0, 0) // PROJECTVERSION
	rec(0x000F, binary.LittleEndian.AppendUint16(nil, uint16(len(modules))))
	for _, m := range modules {
		rec(0x0019, []byte(m))
		rec(0x001A, []byte(m))
		var u []byte
		for _, c := range utf16.Encode([]rune(m)) {
			u = binary.LittleEndian.AppendUint16(u, c)
		}
		rec(0x0032, u)
		rec(0x0031, []byte{0, 0, 0, 0})
		rec(0x002B, nil)
	}
	rec(0x0010, nil)
	return d
}

// vbaProject builds a vbaProject.bin-style compound file (or the VBA part
// of a .doc under prefix) with one module per source.
func vbaEntries(prefix string, sources map[string]string) []cfbEntry {
	var names []string
	for n := range sources {
		names = append(names, n)
	}
	sort.Strings(names)
	es := []cfbEntry{
		{path: prefix + "VBA/dir", data: compressVBA(vbaDir(names...))},
		{path: prefix + "VBA/_VBA_PROJECT", data: []byte{0xcc, 0x61, 0xff, 0xff, 0x00}},
		{path: prefix + "PROJECT", data: []byte("ID=\"{00000000-0000-0000-0000-000000000000}\"\r\nDocument=ThisDocument/&H00000000\r\n")},
	}
	for _, n := range names {
		es = append(es, cfbEntry{path: prefix + "VBA/" + n, data: compressVBA([]byte(sources[n]))})
	}
	return es
}
