package memory_test

import (
	"testing"

	"github.com/rotorauth/rotor/internal/store/memory"
	"github.com/rotorauth/rotor/internal/store/storetest"
	"github.com/rotorauth/rotor/internal/tokens"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(*testing.T) tokens.Store { return memory.New() })
}
