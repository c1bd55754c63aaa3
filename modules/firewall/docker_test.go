package firewall

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/moby/moby/client"
)

// fakeEngine answers the few Engine API calls the module makes, as dockerd
// does (checked against the API's swagger and dockerd's responses): the real
// client, its version negotiation and error mapping are what is tested.
type fakeEngine struct {
	mu      sync.Mutex
	nets    map[string]map[string]any
	created []map[string]any
}

func (f *fakeEngine) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Api-Version", "1.45")
	path := r.URL.Path
	if i := strings.Index(path, "/networks"); i >= 0 {
		path = path[i:]
	}
	switch {
	case strings.HasSuffix(r.URL.Path, "/_ping"):
		_, _ = w.Write([]byte("OK"))
	case r.Method == http.MethodPost && path == "/networks/create":
		var req map[string]any
		_ = json.NewDecoder(r.Body).Decode(&req)
		f.created = append(f.created, req)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"Id":"abcdefabcdef0123","Warning":""}`))
	case r.Method == http.MethodGet && strings.HasPrefix(path, "/networks/"):
		name := strings.TrimPrefix(path, "/networks/")
		n, ok := f.nets[name]
		if !ok {
			// dockerd also resolves ID prefixes: "0123" finds "app".
			for _, v := range f.nets {
				if strings.HasPrefix(v["Id"].(string), name) {
					n, ok = v, true
				}
			}
		}
		w.Header().Set("Content-Type", "application/json")
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"message":"network ` + name + ` not found"}`))
			return
		}
		_ = json.NewEncoder(w).Encode(n)
	default:
		w.WriteHeader(http.StatusNotImplemented)
	}
}

func TestDockerAPI(t *testing.T) {
	eng := &fakeEngine{nets: map[string]map[string]any{
		"bridge": {"Name": "bridge", "Id": "f00df00df00df00d", "Driver": "bridge", "Internal": false,
			"Options": map[string]string{"com.docker.network.bridge.name": "docker0"}},
		"app": {"Name": "app", "Id": "0123456789abcdef", "Driver": "bridge", "Internal": true},
	}}
	srv := httptest.NewServer(eng)
	defer srv.Close()
	d, err := newDockerAPI(client.WithHost("tcp://" + strings.TrimPrefix(srv.URL, "http://")))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	n, found, err := d.Network(ctx, "bridge")
	if err != nil || !found {
		t.Fatalf("bridge: %v %v", found, err)
	}
	if br, _ := BridgeName(n); br != "docker0" {
		t.Errorf("bridge resolves to %q", br)
	}
	n, found, err = d.Network(ctx, "app")
	if err != nil || !found || !n.Internal {
		t.Fatalf("app: %+v %v %v", n, found, err)
	}
	if br, _ := BridgeName(n); br != "br-0123456789ab" {
		t.Errorf("app resolves to %q", br)
	}
	if _, found, err := d.Network(ctx, "ghost"); err != nil || found {
		t.Errorf("ghost: found %v, err %v", found, err)
	}
	// An ID prefix finds a network in dockerd, but it is not that name.
	if _, found, err := d.Network(ctx, "0123"); err != nil || found {
		t.Errorf("ID prefix 0123: found %v, err %v", found, err)
	}
	if err := d.CreateNetwork(ctx, "isolated", true); err != nil {
		t.Fatal(err)
	}
	if len(eng.created) != 1 || eng.created[0]["Name"] != "isolated" || eng.created[0]["Driver"] != "bridge" || eng.created[0]["Internal"] != true {
		t.Errorf("create request: %+v", eng.created)
	}
}

func TestDockerAPIUnreachable(t *testing.T) {
	d, err := newDockerAPI(client.WithHost("unix:///nonexistent/docker.sock"))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = d.Network(context.Background(), "bridge")
	if err == nil || !strings.Contains(err.Error(), `inspect docker network "bridge"`) {
		t.Errorf("err = %v", err)
	}
}
