package role

// countDivergence counts a divergence at now (Unix ns) in n's window and
// reports whether it marks the unit DIVERGED (it was not already). A
// window is DivergeWindow minutes from its first divergence; a divergence
// after it begins a new one. The window's start is kept as Unix minutes
// mod 256 (the record has one byte for it), so a divergence a multiple of
// 256 minutes (4 h 16 min) after a window began, give or take the window,
// is counted in it: at worst a unit whose handler diverged three times in
// a few hours is marked DIVERGED, which an operator then looks at anyway.
func countDivergence(n *Role, now int64) bool {
	minute := uint8(now / 60e9)
	if n.Divergences == 0 || minute-n.DivWindow >= DivergeWindow {
		n.Divergences, n.DivWindow = 0, minute
	}
	if n.Divergences < DivergeLimit {
		n.Divergences++
	}
	if n.Divergences >= DivergeLimit && !n.Diverged {
		n.Diverged = true
		return true
	}
	return false
}
