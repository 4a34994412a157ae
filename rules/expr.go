package rules

import (
	"errors"
	"fmt"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"

	"github.com/edgegate/edgegate/internal/yamlconf"
)

// Bounds on expressions. A condition or value may have at most MaxNodes
// syntax nodes, and one run may allocate at most MemoryBudget units of
// expr's memory accounting (ranges, maps, arrays, closures' scopes); over
// that, the run stops with an error counted for the rule.
const (
	MaxNodes     = 1000
	MemoryBudget = 100_000
)

// prog compiles an expression of the event environment.
func (c *compiler) prog(p yamlconf.Path, src string, stateful bool, opts ...expr.Option) *vm.Program {
	return c.progEnv(p, src, stateful, append([]expr.Option{expr.Env(Env{})}, opts...)...)
}

func (c *compiler) progEnv(p yamlconf.Path, src string, stateful bool, opts ...expr.Option) *vm.Program {
	if strings.TrimSpace(src) == "" {
		c.errs.Add(p, "empty expression")
		return nil
	}
	pt := &patcher{stateful: stateful}
	if stateful { // the event environment
		pt.slots = c.slots
	}
	all := []expr.Option{expr.MaxNodes(MaxNodes), expr.Patch(pt), expr.DisableBuiltin("now"), divFunc}
	all = append(all, opts...)
	all = append(all, statefulFuncs...)
	prog, err := expr.Compile(src, all...)
	if len(pt.errs) > 0 {
		c.errs.Add(p, "%s", strings.Join(pt.errs, "; "))
		return nil
	}
	if err != nil {
		c.errs = append(c.errs, exprError(p, err))
		return nil
	}
	for _, s := range pt.sites {
		c.sites[s] = &siteInfo{}
	}
	if pt.segments {
		*c.segs = true
	}
	return prog
}

// exprError is a compile error of the expression at p, positioned inside
// the expression (the config loader turns that into a file column).
func exprError(p yamlconf.Path, err error) *yamlconf.Error {
	var fe *file.Error
	if errors.As(err, &fe) {
		return &yamlconf.Error{Path: p, Msg: fe.Message, ExprLine: fe.Line, ExprColumn: fe.Column + 1}
	}
	return yamlconf.Errorf(p, "%s", strings.ReplaceAll(err.Error(), "\n", " "))
}

// exprMessage turns expr's multi-line error (message, position, snippet)
// into one line, for errors at run time.
func exprMessage(err error) string {
	var fe *file.Error
	if errors.As(err, &fe) {
		msg := fe.Message
		if fe.Line > 1 {
			return fmt.Sprintf("%s (expression line %d, column %d)", msg, fe.Line, fe.Column+1)
		}
		return fmt.Sprintf("%s (column %d)", msg, fe.Column+1)
	}
	return strings.ReplaceAll(err.Error(), "\n", " ")
}

// runner is a pooled VM with its evaluation state.
type runner struct {
	vm   vm.VM
	st   evalState
	vals []any  // resolved data/ext paths
	n    uint32 // evaluations, for sampled timing
}

const timingSample = 16

// run executes prog; vm.Run turns panics (ours included) into errors.
func (r *runner) run(prog *vm.Program, env any) (out any, err error) {
	out, err = r.vm.Run(prog, env)
	if err != nil {
		err = errors.New(exprMessage(err))
	}
	return out, err
}

// divFunc is the / operator of rule expressions: float division that fails
// on a zero divisor instead of returning ±Inf or NaN.
var divFunc = expr.Function("__div", func(args ...any) (any, error) {
	a, okA := toFloat(args[0])
	b, okB := toFloat(args[1])
	if !okA || !okB {
		return nil, fmt.Errorf("invalid operation: %T / %T", args[0], args[1])
	}
	if b == 0 {
		return nil, errors.New("division by zero")
	}
	return a / b, nil
}, new(func(any, any) float64))
