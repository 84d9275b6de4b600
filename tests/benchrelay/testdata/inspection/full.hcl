# benchrelay -compare: the full inspection path: authentication, the MIME
# walk and archives, YARA with the shipped rules (benchrelay links the
# repository's rules/ beside each mailguard's policy), conversation memory.
yara {
  rules = ["./rules/*.yar"]
}
