# benchrelay -policy: two client lists and two URL lists over the loopback
# DNS server that -dns-zone starts (dns.servers is added by benchrelay).
auth { enabled = false }
reputation {
  zone "zen.test" {
    weight = 3
  }
  dnsbl = ["bl.test"]
  uribl = ["multi.uribl.test", "multi.surbl.test"]
}
