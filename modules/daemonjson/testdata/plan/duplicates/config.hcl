docker_daemon {
  log_driver = "json-file"
}
