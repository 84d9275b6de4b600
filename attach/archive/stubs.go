package archive

func walkISO(w *walker) error { w.unsupported("iso9660: not yet"); return nil }
func walkFAT(w *walker) error { w.unsupported("fat: not yet"); return nil }
