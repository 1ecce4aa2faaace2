package eventbus

// groupStream is one stream the consumer reads: a partition's main or
// retries stream, or the replay stream (whose entries are settled with
// partition 0's keys).
type groupStream struct {
	name    string
	part    int  // the partition whose keys settle its entries
	retries bool // a retries stream: one handler's retry per entry
}

// readStreams lists the streams the consumer reads, built once: every
// partition's main stream, the replay stream, then every partition's
// retries stream (today, with one partition: main, replay, retries).
func (c *Consumer) readStreams() []groupStream {
	k := c.bus.rdb.Keys()
	var out []groupStream
	for p := range k.Partitions() {
		out = append(out, groupStream{name: k.MainPartition(p), part: p})
	}
	out = append(out, groupStream{name: k.Replay()})
	for p := range k.Partitions() {
		out = append(out, groupStream{name: k.Partition(p).Retries(c.bus.cfg.Group), part: p, retries: true})
	}
	return out
}

// streams returns the names of the streams the consumer reads, in
// readStreams' order.
func (c *Consumer) streams() []string {
	out := make([]string, len(c.groupStreams))
	for i, s := range c.groupStreams {
		out[i] = s.name
	}
	return out
}

// stream returns the consumer's description of one of its streams.
func (c *Consumer) stream(name string) groupStream {
	for _, s := range c.groupStreams {
		if s.name == name {
			return s
		}
	}
	return groupStream{name: name} // not one of ours: settled as partition 0's
}
