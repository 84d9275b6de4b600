lists {
  block_senders = ["@spammer.example", "bad-actor.example"]
}
