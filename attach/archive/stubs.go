package archive

func walkFAT(w *walker) error { w.unsupported("fat: not yet"); return nil }
