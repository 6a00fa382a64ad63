package flasher

import (
	"context"
	"errors"
	"fmt"
	"time"

	"fuseline/esp/loader"
)

// modelTimeout bounds one OpModelKind exchange: a ROM's refusal and a
// model's answer both come at once; only a lost frame waits it out.
const modelTimeout = 500 * time.Millisecond

// AskModel asks what is behind the link (loader.OpModelKind) and returns
// the kind a model of a chip announces (loader.ModelVirtual), or "" when
// the loader refuses the question as silicon does: a ROM's "invalid
// command" (also in Secure Download Mode) or a stub's. A refusal is the
// expected answer of a real board and leaves the session as it was. A lost
// or damaged answer is asked again (Config.BlockTries); if none comes the
// error wraps ErrTimeout, so a model behind a noisy line is never taken
// for silicon. The answer is kept in Info.Model.
func (s *Session) AskModel(ctx context.Context) (string, error) {
	if err := s.alive(); err != nil {
		return "", err
	}
	var (
		res []byte
		err error
	)
	for t := 0; t < cmpInt(s.cfg.BlockTries, 3); t++ {
		_, res, err = s.commandOnce(ctx, loader.Request{Op: loader.OpModelKind}, loader.ModelKindLen, modelTimeout)
		if !errors.Is(err, ErrTimeout) && !errors.As(err, new(*loader.FormatError)) {
			break
		}
		s.log.Debug("flasher: model question unanswered, asking again", "try", t+1, "err", err)
	}
	var ce *CommandError
	switch {
	case err == nil:
	case errors.Is(err, ErrLinkLost) || ctx.Err() != nil:
		return "", fmt.Errorf("flasher: asking for a model: %w", err)
	case errors.As(err, &ce) && (ce.Status != 0 || errors.Is(err, ErrUnsupported)):
		// Silicon (or a stub on it): not a model.
		s.log.Debug("flasher: the loader refused the model question: not a model", "err", err)
		s.info.Model = ""
		return "", nil
	default:
		return "", fmt.Errorf("flasher: asking for a model: %w", err)
	}
	kind, perr := loader.ParseModelKind(res)
	if perr != nil {
		return "", fmt.Errorf("flasher: asking for a model: %w", perr)
	}
	s.info.Model = kind
	return kind, nil
}
