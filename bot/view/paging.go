package view

import "github.com/slack-go/slack"

// Paged is the page of items shown, kept within the pages there are, the
// number of pages, and the items on that page.
func Paged[T any](items []T, page, perPage int) (int, int, []T) {
	pages := max((len(items)+perPage-1)/perPage, 1)
	page = min(max(page, 0), pages-1)
	return page, pages, items[page*perPage : min((page+1)*perPage, len(items))]
}

// pageButtons are the Previous and Next buttons of a view shown page by
// page, nil when there is no other page: action_id action_prev or
// action_next, carrying value(p) to turn to page p.
func pageButtons(blockID, action string, page, pages int, value func(p int) string) *slack.ActionBlock {
	var buttons []slack.BlockElement
	if page > 0 {
		buttons = append(buttons, slack.NewButtonBlockElement(action+"_prev", value(page-1), Plain("‹ Previous")))
	}
	if page < pages-1 {
		buttons = append(buttons, slack.NewButtonBlockElement(action+"_next", value(page+1), Plain("Next ›")))
	}
	if len(buttons) == 0 {
		return nil
	}
	return slack.NewActionBlock(blockID, buttons...)
}
