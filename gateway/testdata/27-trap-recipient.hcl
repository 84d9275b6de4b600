lists {
  trap_addresses = ["trap@corp.example"]
}
