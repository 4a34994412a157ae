package yamlconf

import (
	"fmt"
	"io"
	"os"
)

// ReadFile reads a file a configuration names (an included rules file, a
// users file): a regular file of at most max bytes, so that a FIFO or a
// device does not block or never end, and a huge file is refused.
func ReadFile(path string, max int64) ([]byte, error) {
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s is larger than %s", path, ByteSize(max))
	}
	return data, nil
}
