// Package apidocs holds the OpenAPI document of the service and the Swagger UI assets that
// present it, embedded so that /docs works offline.
package apidocs

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"

	"gopkg.in/yaml.v3"
)

//go:embed openapi.yaml
var specYAML []byte

//go:embed ui
var ui embed.FS

// YAML returns the OpenAPI document as written.
func YAML() []byte { return specYAML }

// JSON returns the OpenAPI document as JSON.
func JSON() ([]byte, error) {
	var doc any
	if err := yaml.Unmarshal(specYAML, &doc); err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	return json.Marshal(doc)
}

// UI returns the Swagger UI files (index.html, init.js, swagger-ui-bundle.js, ...).
func UI() fs.FS {
	sub, err := fs.Sub(ui, "ui")
	if err != nil {
		panic(err)
	}
	return sub
}
