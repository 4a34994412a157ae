package rules

import (
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/edgegate/edgegate/cloudevent"
)

type targetKind int

const (
	tData targetKind = iota
	tType
	tSource
	tSubject
	tID
	tContentType
	tTime
	tExt
)

// target is what a set or remove action changes: an attribute, a data
// path or an extension.
type target struct {
	kind targetKind
	path []string // data path or ext name
}

// attrTargets names the targets that are a whole attribute, by kind. tExt
// is not one: its targets are ext.name.
var attrTargets = [...]string{
	tData: "data", tType: "type", tSource: "source", tSubject: "subject",
	tID: "id", tContentType: "datacontenttype", tTime: "time",
}

func parseTarget(s string, forSet bool) (target, error) {
	for k, name := range attrTargets {
		if s == name {
			return target{kind: targetKind(k)}, nil
		}
	}
	if rest, ok := strings.CutPrefix(s, "data."); ok {
		path := strings.Split(rest, ".")
		for _, f := range path {
			if f == "" {
				return target{}, fmt.Errorf("%q has an empty field name", s)
			}
		}
		return target{kind: tData, path: path}, nil
	}
	if name, ok := strings.CutPrefix(s, "ext."); ok {
		if !cloudevent.ValidExtensionName(name) || cloudevent.Reserved(name) {
			return target{}, fmt.Errorf("%q: extension names are 1-20 lower-case letters or digits and not a CloudEvents attribute", s)
		}
		return target{kind: tExt, path: []string{name}}, nil
	}
	_ = forSet
	return target{}, fmt.Errorf("unknown target %q: use data, data.field, type, source, subject, id, time, datacontenttype or ext.name", s)
}

func (t target) String() string {
	switch {
	case t.kind == tExt:
		return "ext." + t.path[0]
	case t.kind == tData && len(t.path) > 0:
		return "data." + strings.Join(t.path, ".")
	}
	return attrTargets[t.kind]
}

func assign(ev *Event, t target, v any) error {
	switch t.kind {
	case tData:
		if len(t.path) == 0 {
			ev.Data = v
			if v != nil && ev.DataContentType == "" {
				ev.DataContentType = "application/json"
			}
			return nil
		}
		nd, err := setPath(ev.Data, t.path, v)
		if err != nil {
			return err
		}
		ev.Data = nd
		if ev.DataContentType == "" {
			ev.DataContentType = "application/json"
		}
		return nil
	case tTime:
		tm, ok := v.(time.Time)
		if !ok {
			return fmt.Errorf("%v is not a time", v)
		}
		ev.Time = tm
		return nil
	case tExt:
		ext := maps.Clone(ev.Extensions)
		if ext == nil {
			ext = map[string]any{}
		}
		if v == nil {
			delete(ext, t.path[0])
		} else {
			ext[t.path[0]] = v
		}
		ev.Extensions = ext
		return nil
	}
	str, ok := v.(string)
	if !ok {
		return fmt.Errorf("%v is not a string", v)
	}
	if str == "" && t.kind != tSubject {
		return errors.New("must not be empty")
	}
	switch t.kind {
	case tType:
		ev.Type = str
	case tSource:
		ev.Source = str
	case tSubject:
		ev.Subject = str
	case tID:
		ev.ID = str
	case tContentType:
		ev.DataContentType = str
	}
	return nil
}

// setPath returns a copy of data with path set to v; the maps along the
// path are copied, so the input is never modified.
func setPath(data any, path []string, v any) (any, error) {
	var m map[string]any
	switch x := data.(type) {
	case nil:
		m = make(map[string]any, 1)
	case map[string]any:
		m = maps.Clone(x)
	default:
		return nil, fmt.Errorf("data is not an object (it is %T)", data)
	}
	if len(path) == 1 {
		m[path[0]] = v
		return m, nil
	}
	child, err := setPath(m[path[0]], path[1:], v)
	if err != nil {
		return nil, err
	}
	m[path[0]] = child
	return m, nil
}

func removePath(data any, path []string) any {
	m, ok := data.(map[string]any)
	if !ok {
		return data
	}
	if _, ok := m[path[0]]; !ok {
		return data
	}
	m = maps.Clone(m)
	if len(path) == 1 {
		delete(m, path[0])
		return m
	}
	m[path[0]] = removePath(m[path[0]], path[1:])
	return m
}

func unset(ev *Event, t target) {
	switch t.kind {
	case tData:
		if len(t.path) == 0 {
			ev.Data = nil
			return
		}
		ev.Data = removePath(ev.Data, t.path)
	case tSubject:
		ev.Subject = ""
	case tContentType:
		ev.DataContentType = ""
	case tExt:
		if _, ok := ev.Extensions[t.path[0]]; ok {
			ext := maps.Clone(ev.Extensions)
			delete(ext, t.path[0])
			ev.Extensions = ext
		}
	}
}
