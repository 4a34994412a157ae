package configstore

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestSaveHistoryPruneAndRollbackMarks(t *testing.T) {
	s := New(filepath.Join(t.TempDir(), "config"), 3)
	if _, ok, err := s.Active(); ok || err != nil {
		t.Fatalf("Active of an empty store: %v %v", ok, err)
	}
	at := time.Unix(1_700_000_000, 0).UTC()
	for v := int64(1); v <= 5; v++ {
		e := Entry{Version: v, Hash: fmt.Sprintf("%064d", v), Source: "admin", AppliedAt: at.Add(time.Duration(v) * time.Second)}
		if _, err := s.Save(e, []byte(fmt.Sprintf("doc %d\n", v)), nil, "local"); err != nil {
			t.Fatal(err)
		}
	}
	a, ok, err := s.Active()
	if !ok || err != nil || a.Version != 5 || a.LocalHash != "local" {
		t.Fatalf("Active = %+v %v %v", a, ok, err)
	}
	h, err := s.History()
	if err != nil || len(h) != 3 || h[0].Version != 5 || h[2].Version != 3 {
		t.Fatalf("History = %+v %v", h, err)
	}
	files, _ := os.ReadDir(filepath.Join(s.Dir(), "history"))
	if len(files) != 3 {
		t.Errorf("history holds %d files, want 3", len(files))
	}
	doc, sig, err := s.Read(h[1])
	if string(doc) != "doc 4\n" || sig != nil || err != nil {
		t.Errorf("Read = %q %q %v", doc, sig, err)
	}
	if err := s.MarkRolledBack(h[0].Hash, "uplink cloud failing"); err != nil {
		t.Fatal(err)
	}
	if r, _ := s.RolledBack(h[0].Hash); r != "uplink cloud failing" {
		t.Errorf("RolledBack = %q", r)
	}
	if e, ok, _ := s.Find(5); !ok || e.RolledBack == "" {
		t.Errorf("Find(5) = %+v %v", e, ok)
	}
	// Recording the same version and hash again is a no-op.
	if e, err := s.Record(Entry{Version: 4, Hash: h[1].Hash, AppliedAt: time.Now()}, []byte("x"), nil); err != nil || e.File != h[1].File {
		t.Errorf("Record again = %+v %v", e, err)
	}
	if n, _ := s.MaxVersion(); n != 5 {
		t.Errorf("MaxVersion = %d", n)
	}
	// No temporary files are left behind.
	all, _ := filepath.Glob(filepath.Join(s.Dir(), ".*tmp*"))
	if len(all) != 0 {
		t.Errorf("temporary files left: %v", all)
	}
}
