# mailguard example policy.
#
# This file works as it is: `mailguard serve` listens on 127.0.0.1:2525,
# accepts mail for corp.example, and (with no relay set) delivers accepted
# mail into ./var/maildir. Check your edits with `mailguard check`.
# Relative paths are relative to this file. Every key is documented in
# docs/policy.md; what you leave out takes the default shown there.

gateway {
  hostname          = "mx.corp.example"     # banner, Received, authserv-id
  listen            = ["127.0.0.1:2525"]    # plain SMTP (STARTTLS if tls is set)
  local_domains     = ["corp.example"]      # accepted from anyone; nothing else is relayed
  internal_networks = ["127.0.0.0/8"]       # may send anywhere: mail to other domains is outbound
  trusted_proxies   = ["127.0.0.1/32"]      # may send PROXY headers and XCLIENT
  metrics_listen    = "127.0.0.1:9425"      # Prometheus /metrics

  # tls {
  #   cert = "/etc/mailguard/mx.crt"
  #   key  = "/etc/mailguard/mx.key"
  # }
}

limits {
  max_message_size = "50MB"
  max_recipients   = 1000
  inspect_timeout  = "120s"   # the whole inspection; then the policy's on_error applies
}

store {
  path = "./var"              # SQLite + spool; use postgres = "postgres://…" for several nodes
}

delivery {
  # inbound_relay  = "exchange.corp.example:25"  # unset: deliver into the maildir below
  # outbound_relay = "smarthost.corp.example:25" # unset: outbound mail goes to the maildir too
  maildir = "./var/maildir"
  tls     = "opportunistic"   # or "required", "off"
}

# dns {
#   servers = ["127.0.0.1:53"]   # unset: the servers in /etc/resolv.conf
# }

auth {
  temperror_action = "tempfail"   # DNS trouble: 451, the sender retries
  # trusted_forwarders = ["192.0.2.0/24"]
}

archive {
  max_depth      = 8
  max_total_size = "512MB"
  # Tried after the passwords found in the message itself.
  passwords = ["infected"]
}

yara {
  rules = ["./rules/*.yar"]
}

# sandbox "cape" {
#   url          = "http://127.0.0.1:8090/apiv2/"
#   token        = env("CAPE_TOKEN")
#   hold_timeout = "30m"
#   on_timeout   = "quarantine"      # fail closed; "tag" delivers with a header
# }

# reputation {
#   dnsbl = ["zen.spamhaus.org"]
#   uribl = ["multi.uribl.com"]
# }

conversations {
  password_window = "30m"   # how long an encrypted archive waits for its password mail
}

lists {
  # allow_senders  = ["partner.example"]
  # block_senders  = ["@spam.example"]
  trap_addresses = ["trap@corp.example"]
  # vip_names    = ["山田 太郎", "Taro Yamada"]
  groups = {
    finance = ["keiri@corp.example"]
  }
}

# Your rules run first, then the built-in ones (`mailguard check --builtin`
# prints them). The first rule with an action decides; a rule with
# `continue = true` only adds its reason and score and lets evaluation go on.
# A rule that delivers overrides the built-in checks below it, so make such
# rules narrow.

# Finance never receives an archive that nobody could open, not even while
# the password mail is awaited.
rule "finance-locked-archive" {
  when   = direction == "inbound" && contains(rcpt_groups, "finance") && anytrue([for f in files : f.encrypted && !f.decrypted])
  action = "quarantine"
  reason = "encrypted_unscannable"
}

# First contact with finance counts towards the score-based rules.
rule "finance-first-contact" {
  when     = direction == "inbound" && contains(rcpt_groups, "finance") && thread.first_contact
  score    = 2
  continue = true
}
