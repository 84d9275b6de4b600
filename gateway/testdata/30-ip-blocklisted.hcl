reputation {
  zone "dnsbl.test" {
    weight = 3
  }
}
