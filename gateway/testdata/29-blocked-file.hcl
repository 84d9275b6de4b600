lists {
  block_sha256 = ["b2650285bb07cebdc829e61cf1c99a00e0436b7d0240dd2a1ef6928db8533b9b"]
}
