docker_daemon {
  userns_remap = "default"
  settings = {
    "live-restore" = true
  }
}
