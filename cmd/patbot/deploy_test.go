package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// The container image pins its bases, labels itself, and checks its own
// health with a command patbot has.
func TestDockerfile(t *testing.T) {
	raw, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	froms := regexp.MustCompile(`(?m)^FROM (\S+)`).FindAllStringSubmatch(text, -1)
	if len(froms) < 2 {
		t.Fatalf("FROM lines: %v", froms)
	}
	for _, f := range froms {
		if !regexp.MustCompile(`@sha256:[0-9a-f]{64}$`).MatchString(f[1]) {
			t.Errorf("base image %s is not pinned by digest", f[1])
		}
	}
	if !strings.Contains(text, `HEALTHCHECK`) || !strings.Contains(text, `CMD ["/usr/local/bin/patbot", "healthcheck"]`) {
		t.Error("no HEALTHCHECK running patbot healthcheck")
	}
	for _, label := range []string{"title", "description", "source", "version", "revision"} {
		if !strings.Contains(text, "org.opencontainers.image."+label+"=") {
			t.Errorf("OCI label %s missing", label)
		}
	}
}

// The systemd unit needs no user created by hand.
func TestSystemdUnit(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/patbot.service")
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	for _, want := range []string{"DynamicUser=yes", "StateDirectory=patbot", "ExecReload=/bin/kill -HUP $MAINPID"} {
		if !strings.Contains(text, "\n"+want+"\n") {
			t.Errorf("unit lacks %s", want)
		}
	}
	if strings.Contains(text, "\nUser=") {
		t.Error("a fixed User= needs creating by hand")
	}
}
