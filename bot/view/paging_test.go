package view

import (
	"slices"
	"testing"
)

// Paged keeps a page within the pages there are; an empty list is one
// empty page.
func TestPaged(t *testing.T) {
	items := []int{1, 2, 3, 4, 5}
	for _, c := range []struct {
		page, wantPage, wantPages int
		want                      []int
	}{
		{0, 0, 3, []int{1, 2}},
		{2, 2, 3, []int{5}},
		{7, 2, 3, []int{5}},
		{-1, 0, 3, []int{1, 2}},
	} {
		page, pages, shown := Paged(items, c.page, 2)
		if page != c.wantPage || pages != c.wantPages || !slices.Equal(shown, c.want) {
			t.Errorf("Paged(page %d) = %d, %d, %v", c.page, page, pages, shown)
		}
	}
	if page, pages, shown := Paged([]int(nil), 3, 2); page != 0 || pages != 1 || len(shown) != 0 {
		t.Errorf("Paged(nil) = %d, %d, %v", page, pages, shown)
	}
}
