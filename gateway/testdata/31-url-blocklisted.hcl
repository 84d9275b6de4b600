reputation {
  uribl = ["uribl.test"]
}
