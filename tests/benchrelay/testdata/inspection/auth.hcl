# benchrelay -compare: the bare relay plus sender authentication (SPF for
# MAIL FROM and HELO, DMARC) over the loopback DNS server of -dns-zone
# (zone.txt; dns.servers is added by benchrelay).
conversations { enabled = false }
