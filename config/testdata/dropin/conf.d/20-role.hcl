docker_daemon {
  path = "/srv/daemon.json"
}

service "docker.service" {
  state = "running"
}

service "docker.service" {
  state = "running"
}
