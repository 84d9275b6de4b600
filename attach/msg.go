package attach

import (
	"fmt"
	"sort"
	"strings"

	"github.com/mailguard/mailguard/reason"
)

// msg walks an Outlook .msg (MS-OXMSG): each attachment storage's binary
// data (PR_ATTACH_DATA_BIN) becomes a child named by its long file name;
// the body and subject feed the password scan like any message text.
func (w *walker) msg(f *File, d *oleDoc) error {
	w.msgText(f, d)
	var atts []string
	for _, e := range d.entries {
		if isStorage(e) && len(e.Path) == 0 && strings.HasPrefix(strings.ToLower(e.Name), "__attach_version1.0_#") {
			atts = append(atts, e.Name)
		}
	}
	sort.Strings(atts)
	for i, a := range atts {
		if w.stopped() {
			return nil
		}
		name := ""
		for _, tag := range []string{"3707001F", "3707001E", "3704001F", "3704001E", "3001001F", "3001001E"} {
			if s := d.stream(a + "/__substg1.0_" + tag); s != nil {
				b := readStream(s, 4096)
				if strings.HasSuffix(tag, "1F") {
					name = decodeUTF16LE(b)
				} else {
					name = decodeRaw(strings.TrimRight(string(b), "\x00"))
				}
				if name != "" {
					break
				}
			}
		}
		data := d.stream(a + "/__substg1.0_37010102")
		if data == nil {
			if e := d.byPath[strings.ToLower(a+"/__substg1.0_3701000D")]; e != nil {
				f.addFinding(reason.UnsupportedContainer, fmt.Sprintf("msg: embedded message attachment %s not extracted", sanitizeComponent(orDefault(name, a))))
			}
			continue
		}
		if f.Depth+1 > w.lim.MaxDepth {
			w.tooDeep(f, "msg attachment")
			return nil
		}
		display := ""
		if name == "" {
			display = fmt.Sprintf("attachment-%d", i+1)
		}
		child, err := w.addBytes(fileSpec{parent: f, name: name, display: display}, readStream(data, min(w.lim.MaxFileBytes, maxStream)))
		if err != nil || child == nil {
			return err
		}
		if err := w.inspect(child); err != nil {
			return err
		}
	}
	return nil
}

// msgText feeds the .msg subject and bodies to the text and password scan
// and checks the HTML body for smuggling.
func (w *walker) msgText(f *File, d *oleDoc) {
	text := func(tag string) string {
		if s := d.stream("__substg1.0_" + tag + "001F"); s != nil {
			return decodeUTF16LE(readStream(s, int64(w.lim.MaxTextBytes)*2))
		}
		if s := d.stream("__substg1.0_" + tag + "001E"); s != nil {
			return decodeRaw(strings.TrimRight(string(readStream(s, int64(w.lim.MaxTextBytes))), "\x00"))
		}
		return ""
	}
	if subj := text("0037"); subj != "" {
		w.addText(subj)
		w.scanSubject(subj)
	}
	if body := text("1000"); body != "" {
		w.addBody(f, "text/plain", body)
		w.addText(body)
		w.scanText(body)
	}
	if s := d.stream("__substg1.0_10130102"); s != nil {
		h := readStream(s, int64(w.lim.MaxTextBytes)*4)
		w.addBody(f, "text/html", string(h))
		if ind := smugglingIndicators(h); len(ind) > 0 {
			f.addFinding(reason.HTMLSmuggling, "msg HTML body: "+strings.Join(ind, ", "))
		}
		t := htmlToText(decodeRaw(string(h)))
		w.addText(t)
		w.scanText(t)
	}
}

// addBody records a body of an attached message in Result.Bodies.
func (w *walker) addBody(parent *File, ctype, text string) {
	if room := w.lim.MaxTotalBytes - w.nbytes; int64(len(text)) > room {
		w.bomb(parent, fmt.Sprintf("more than %d bytes extracted from the message; the rest was not inspected", w.lim.MaxTotalBytes))
		return
	}
	b := &File{Path: parent.Path + " body " + ctype, Type: ctype, PasswordSource: SourceNone,
		Findings: []reason.Finding{}, data: []byte(text)}
	b.Size = int64(len(b.data))
	b.SHA256 = sha256Hex(b.data)
	w.nbytes += b.Size
	w.res.Bodies = append(w.res.Bodies, b)
}
