"""The synthesis core that every door calls: request -> plan -> scheduled engine work -> bytes."""
