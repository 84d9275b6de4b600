package archive

func walkISO(w *walker) error { w.unsupported("iso9660: not yet"); return nil }
func walkFAT(w *walker) error { w.unsupported("fat: not yet"); return nil }
func walkCAB(w *walker) error { w.unsupported("cab: not yet"); return nil }
func walkCLI(w *walker) error { w.unsupported(string(w.format) + ": not yet"); return nil }
