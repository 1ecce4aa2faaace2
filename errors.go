package eventbus

import "github.com/hyvve/eventbus/internal/rdb"

// ErrUnavailable is returned (wrapped) by every operation while Redis
// cannot be reached. A circuit breaker makes calls fail at once after
// repeated failures; it closes by itself when Redis answers again.
var ErrUnavailable = rdb.ErrUnavailable
