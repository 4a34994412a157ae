package rules

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/edgegate/edgegate/internal/yamlconf"
)

// emitAction is a compiled emit (also of aggregate and stale actions).
type emitAction struct {
	typ     string
	source  *vm.Program
	subject *vm.Program
	data    *vm.Program
	routes  []string
}

// publishAction is a compiled publish action.
type publishAction struct {
	topic   *vm.Program
	payload *vm.Program
	qos     byte
	retain  bool
}

var typePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/-]{0,254}$`)

// emit compiles an emit of an event, whose expressions see env (Env,
// WindowEnv or StaleEnv).
func (c *compiler) emit(p yamlconf.Path, e EmitSpec, uplinks []string, env any) *emitAction {
	out := &emitAction{typ: e.Type}
	if e.Type == "" {
		c.errs.Add(p.Key("type"), "is required (a plain name such as io.acme.alert.overheat)")
	} else if !typePattern.MatchString(e.Type) {
		c.errs.Add(p.Key("type"), "%q is not a valid event type (a plain name, not an expression)", e.Type)
	}
	stateful := false
	if _, ok := env.(Env); ok {
		stateful = true
	}
	opt := expr.Env(env)
	if e.Source != "" {
		out.source = c.progEnv(p.Key("source"), e.Source, stateful, opt, expr.AsKind(reflect.String))
	}
	if e.Subject != "" {
		out.subject = c.progEnv(p.Key("subject"), e.Subject, stateful, opt, expr.AsKind(reflect.String))
	}
	if e.Data != "" {
		out.data = c.progEnv(p.Key("data"), e.Data, stateful, opt)
	}
	out.routes = c.routes(p.Key("route"), e.Route, uplinks)
	return out
}

// publish compiles a publish action.
func (c *compiler) publish(p yamlconf.Path, pb PublishSpec) *publishAction {
	out := &publishAction{retain: pb.Retain}
	if pb.Topic == "" {
		c.errs.Add(p.Key("topic"), "is required (an expression, e.g. \"'devices/' + subject + '/cmd'\")")
	} else {
		out.topic = c.prog(p.Key("topic"), pb.Topic, true, expr.AsKind(reflect.String))
	}
	if pb.Payload != "" {
		out.payload = c.prog(p.Key("payload"), pb.Payload, true)
	}
	if pb.QoS < 0 || pb.QoS > 2 {
		c.errs.Add(p.Key("qos"), "must be 0, 1 or 2")
	}
	out.qos = byte(pb.QoS)
	return out
}

// buildEmit builds an emitted event from an emit action.
func (s *Set) buildEmit(r *runner, ea *emitAction, ruleName string, env any, subject string, now time.Time, gw string) (Emitted, error) {
	e := Event{
		ID:      s.opts.newID(),
		Type:    ea.typ,
		Source:  "/edgegate/" + gw + "/rules/" + ruleName,
		Subject: subject,
		Time:    now.UTC(),
	}
	if ea.source != nil {
		v, err := r.run(ea.source, env)
		if err != nil {
			return Emitted{}, fmt.Errorf("source: %w", err)
		}
		if e.Source, _ = v.(string); e.Source == "" {
			return Emitted{}, errors.New("source: must be a non-empty string")
		}
	}
	if ea.subject != nil {
		v, err := r.run(ea.subject, env)
		if err != nil {
			return Emitted{}, fmt.Errorf("subject: %w", err)
		}
		e.Subject, _ = v.(string)
	}
	if ea.data != nil {
		v, err := r.run(ea.data, env)
		if err != nil {
			return Emitted{}, fmt.Errorf("data: %w", err)
		}
		e.Data = v
	}
	if e.Data != nil {
		e.DataContentType = "application/json"
	}
	return Emitted{Event: e, Routes: ea.routes}, nil
}

func buildPublish(r *runner, pa *publishAction, env any) (Publish, error) {
	v, err := r.run(pa.topic, env)
	if err != nil {
		return Publish{}, fmt.Errorf("topic: %w", err)
	}
	topic, _ := v.(string)
	if topic == "" || strings.ContainsAny(topic, "+#\x00") {
		return Publish{}, fmt.Errorf("topic: %q is not a topic name (non-empty, no + or #)", topic)
	}
	p := Publish{Topic: topic, QoS: pa.qos, Retain: pa.retain}
	if pa.payload != nil {
		v, err := r.run(pa.payload, env)
		if err != nil {
			return Publish{}, fmt.Errorf("payload: %w", err)
		}
		switch x := v.(type) {
		case string:
			p.Payload = []byte(x)
		case []byte:
			p.Payload = x
		case nil:
		default:
			b, err := json.Marshal(x)
			if err != nil {
				return Publish{}, fmt.Errorf("payload: %w", err)
			}
			p.Payload = b
		}
	}
	return p, nil
}
