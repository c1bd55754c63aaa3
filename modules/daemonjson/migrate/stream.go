package migrate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/moby/moby/api/types/jsonstream"
)

// loadMessage is one message of the stream the daemon answers an image
// load with; "error" is the older daemons' form of errorDetail.
type loadMessage struct {
	jsonstream.Message
	ErrorText string `json:"error,omitempty"`
}

// loadStreamError reads an image load's answer to its end and returns the
// error the daemon reported in it, if any: the HTTP status is 200 before
// the load is done, so a failed load shows only here.
func loadStreamError(r io.Reader) error {
	dec := json.NewDecoder(r)
	for {
		var m loadMessage
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read the daemon's answer: %w", err)
		}
		switch {
		case m.Error != nil && m.Error.Message != "":
			return fmt.Errorf("daemon: %s", m.Error.Message)
		case m.ErrorText != "":
			return fmt.Errorf("daemon: %s", m.ErrorText)
		}
	}
}
