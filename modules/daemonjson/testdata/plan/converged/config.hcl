docker_daemon {
  userns_remap = "default"
  log_driver   = "json-file"
  log_opts     = { max-size = "10m", max-file = 3 }
  settings = {
    "no-new-privileges" = true
    "live-restore"      = true
    "icc"               = false
    "userland-proxy"    = false
  }
}
