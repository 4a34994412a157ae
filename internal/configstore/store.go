package configstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// Entry is one applied configuration.
type Entry struct {
	// Version is the configuration's version: its signed version, or a
	// local sequence number for an unsigned one.
	Version int64  `json:"version"`
	Hash    string `json:"hash"` // SHA-256 hex of the document (and its included rules file)
	Signed  bool   `json:"signed,omitempty"`
	// Source is where it came from (file, admin, pull, mqtt, rollback);
	// Origin says more (a path, a URL, a topic).
	Source    string    `json:"source"`
	Origin    string    `json:"origin,omitempty"`
	AppliedAt time.Time `json:"applied_at"`
	// RolledBack says why the configuration was rolled back, if it was.
	RolledBack string `json:"rolled_back,omitempty"`
	// File is the document's name under history/.
	File string `json:"file"`
}

// Active is the configuration in effect, as active.json records it.
type Active struct {
	Entry
	// LocalHash is the hash of the local configuration file when this one
	// was applied.
	LocalHash string `json:"local_hash"`
}

// index is index.json: the history, newest first, and the hashes that
// were rolled back (kept after their documents are pruned).
type index struct {
	Entries    []Entry           `json:"entries"`
	RolledBack map[string]string `json:"rolled_back,omitempty"` // hash → reason
}

// maxRolledBack bounds the rolled-back hashes remembered.
const maxRolledBack = 100

// Store is a state directory.
type Store struct {
	dir  string
	keep int

	mu sync.Mutex
}

// New returns the store in dir keeping keep documents (at least 2: the
// active one and the one before it). Nothing is created until the first
// Save.
func New(dir string, keep int) *Store {
	return &Store{dir: dir, keep: max(keep, 2)}
}

// Dir is the state directory.
func (s *Store) Dir() string { return s.dir }

// SetKeep changes how many documents are kept (from the next Save).
func (s *Store) SetKeep(keep int) {
	s.mu.Lock()
	s.keep = max(keep, 2)
	s.mu.Unlock()
}

// Active returns the configuration recorded as in effect; ok is false when
// none is.
func (s *Store) Active() (a Active, ok bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	data, err := os.ReadFile(filepath.Join(s.dir, "active.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return a, false, nil
	}
	if err != nil {
		return a, false, err
	}
	if err := json.Unmarshal(data, &a); err != nil {
		return a, false, fmt.Errorf("%s: %w", filepath.Join(s.dir, "active.json"), err)
	}
	return a, true, nil
}

// History returns the kept entries, newest first.
func (s *Store) History() ([]Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ix, err := s.readIndex()
	return ix.Entries, err
}

// Find returns the kept entry of version.
func (s *Store) Find(version int64) (Entry, bool, error) {
	h, err := s.History()
	for _, e := range h {
		if e.Version == version {
			return e, true, err
		}
	}
	return Entry{}, false, err
}

// RolledBack returns why the configuration with hash was rolled back, or
// "" when it was not.
func (s *Store) RolledBack(hash string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ix, err := s.readIndex()
	return ix.RolledBack[hash], err
}

// MaxVersion returns the highest version kept (0 when none).
func (s *Store) MaxVersion() (int64, error) {
	h, err := s.History()
	var v int64
	for _, e := range h {
		v = max(v, e.Version)
	}
	return v, err
}

// Read returns the document of e (and its detached signature, if any).
func (s *Store) Read(e Entry) (doc, sig []byte, err error) {
	p := filepath.Join(s.dir, "history", filepath.Base(e.File))
	if doc, err = os.ReadFile(p); err != nil {
		return nil, nil, err
	}
	sig, err = os.ReadFile(p + ".sig")
	if errors.Is(err, fs.ErrNotExist) {
		err = nil
	}
	return doc, sig, err
}

// Record adds e (with its document and detached signature) to the history
// unless an entry of the same version and hash is there, without changing
// what is active.
func (s *Store) Record(e Entry, doc, sig []byte) (Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.record(e, doc, sig)
}

// Save records e and makes it the active configuration, with localHash the
// hash of the local configuration file.
func (s *Store) Save(e Entry, doc, sig []byte, localHash string) (Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.record(e, doc, sig)
	if err != nil {
		return e, err
	}
	data, err := json.MarshalIndent(Active{Entry: e, LocalHash: localHash}, "", "  ")
	if err != nil {
		return e, err
	}
	return e, writeAtomic(filepath.Join(s.dir, "active.json"), data)
}

// MarkRolledBack records that the configuration with hash was rolled back
// and why.
func (s *Store) MarkRolledBack(hash, reason string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ix, err := s.readIndex()
	if err != nil {
		return err
	}
	if ix.RolledBack == nil {
		ix.RolledBack = map[string]string{}
	}
	ix.RolledBack[hash] = reason
	for len(ix.RolledBack) > maxRolledBack {
		for h := range ix.RolledBack { // any one: the bound matters, not which
			delete(ix.RolledBack, h)
			break
		}
	}
	for i := range ix.Entries {
		if ix.Entries[i].Hash == hash {
			ix.Entries[i].RolledBack = reason
		}
	}
	return s.writeIndex(ix)
}

func (s *Store) record(e Entry, doc, sig []byte) (Entry, error) {
	ix, err := s.readIndex()
	if err != nil {
		return e, err
	}
	for _, old := range ix.Entries {
		if old.Version == e.Version && old.Hash == e.Hash {
			return old, nil
		}
	}
	hist := filepath.Join(s.dir, "history")
	if err := os.MkdirAll(hist, 0o700); err != nil {
		return e, err
	}
	short := e.Hash
	if len(short) > 12 {
		short = short[:12]
	}
	e.File = fmt.Sprintf("%d-%s.yaml", e.Version, short)
	if err := writeAtomic(filepath.Join(hist, e.File), doc); err != nil {
		return e, err
	}
	if len(sig) > 0 {
		if err := writeAtomic(filepath.Join(hist, e.File+".sig"), sig); err != nil {
			return e, err
		}
	}
	if reason := ix.RolledBack[e.Hash]; reason != "" {
		e.RolledBack = reason
	}
	ix.Entries = append([]Entry{e}, ix.Entries...)
	sort.SliceStable(ix.Entries, func(i, j int) bool { return ix.Entries[i].AppliedAt.After(ix.Entries[j].AppliedAt) })
	var pruned []Entry
	if len(ix.Entries) > s.keep {
		pruned = ix.Entries[s.keep:]
		ix.Entries = ix.Entries[:s.keep]
	}
	if err := s.writeIndex(ix); err != nil {
		return e, err
	}
	for _, p := range pruned {
		if !ix.references(p.File) {
			os.Remove(filepath.Join(hist, p.File))
			os.Remove(filepath.Join(hist, p.File+".sig"))
		}
	}
	return e, nil
}

func (ix index) references(file string) bool {
	for _, e := range ix.Entries {
		if e.File == file {
			return true
		}
	}
	return false
}

func (s *Store) readIndex() (index, error) {
	var ix index
	data, err := os.ReadFile(filepath.Join(s.dir, "index.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return ix, nil
	}
	if err != nil {
		return ix, err
	}
	if err := json.Unmarshal(data, &ix); err != nil {
		return ix, fmt.Errorf("%s: %w", filepath.Join(s.dir, "index.json"), err)
	}
	return ix, nil
}

func (s *Store) writeIndex(ix index) error {
	data, err := json.MarshalIndent(ix, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(s.dir, "index.json"), data)
}

// writeAtomic replaces path with data: a temporary file in the same
// directory, fsync, rename, fsync of the directory.
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o600)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
