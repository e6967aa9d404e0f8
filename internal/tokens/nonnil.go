package tokens

// NonNil returns s, or an empty slice for nil: lists are answered and
// stored as [] rather than null.
func NonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// NonNilMap returns m, or an empty map for nil (audit details are {}).
func NonNilMap[K comparable, V any](m map[K]V) map[K]V {
	if m == nil {
		return map[K]V{}
	}
	return m
}
