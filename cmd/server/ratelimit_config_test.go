package main

import (
	"strings"
	"testing"
)

// RATE_LIMIT_IPV6_PREFIX: default 64, a length from 32 to 128 (with or
// without a slash), and one line naming the variable for anything else.
func TestRateLimitIPv6PrefixConfig(t *testing.T) {
	c, err := loadConfig(env(nil))
	if err != nil || c.RateLimitIPv6Bits != 64 {
		t.Fatalf("default: %d, %v", c.RateLimitIPv6Bits, err)
	}
	for v, want := range map[string]int{"48": 48, "/56": 56, "128": 128, "32": 32} {
		c, err := loadConfig(env(map[string]string{"RATE_LIMIT_IPV6_PREFIX": v}))
		if err != nil || c.RateLimitIPv6Bits != want {
			t.Errorf("%q: %d, %v; want %d", v, c.RateLimitIPv6Bits, err, want)
		}
	}
	for _, v := range []string{"0", "31", "129", "-64", "sixty-four", "64/"} {
		_, err := loadConfig(env(map[string]string{"RATE_LIMIT_IPV6_PREFIX": v}))
		if err == nil {
			t.Errorf("%q accepted", v)
			continue
		}
		lines := strings.Split(err.Error(), "\n")
		if len(lines) != 1 || !strings.HasPrefix(lines[0], "RATE_LIMIT_IPV6_PREFIX: ") {
			t.Errorf("%q: error %q, want one line naming RATE_LIMIT_IPV6_PREFIX", v, err)
		}
	}
}
