docker_daemon {
  settings = {
    "log-level" = "warn"
  }
}

firewall {
  network "bridge" {
  }
}
