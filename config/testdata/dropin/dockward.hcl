docker_daemon {
  path = "/etc/docker/daemon.json"
  settings = {
    "live-restore" = true
  }
}

firewall {
  network "bridge" {
  }
}
