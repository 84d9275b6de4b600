sandbox "cape" {
  url          = "http://127.0.0.1:9/apiv2/"
  hold_timeout = "30m"
  search_first = false
}
