"""A MATLAB ``.m`` script that loads a tbexport ``.mat`` and plots every tag."""

from __future__ import annotations

from pathlib import Path

from ..options import WriteOptions

_LOAD = """\
%% Plots every tag in {mat} (written by tbexport): one panel per tag.
%% Run it from anywhere: it loads the .mat file that sits beside it.
data = load(fullfile(fileparts(mfilename('fullpath')), '{mat}'));
tags = data.tbexport_tags;              % {{original tag, variable name}}
n = size(tags, 1);
cols = ceil(sqrt(n));
rows = ceil(n / cols);
figure('Name', '{mat}');
for k = 1:n
    subplot(rows, cols, k);
    hold on;
"""

_SINGLE = """\
    s = data.(tags{k, 2});
    plot(s.step, s.value, 'DisplayName', 'value');
    if isfield(s, 'value_smoothed')
        plot(s.step, s.value_smoothed, 'LineWidth', 1.5, 'DisplayName', 'smoothed');
    end
"""

_RUNS = """\
    runs = data.tbexport_runs;          % {run name, variable name}
    for j = 1:size(runs, 1)
        run = data.(runs{j, 2});
        if isfield(run, tags{k, 2})
            s = run.(tags{k, 2});
            if isfield(s, 'value_smoothed')
                plot(s.step, s.value_smoothed, 'LineWidth', 1.5, 'DisplayName', runs{j, 1});
            else
                plot(s.step, s.value, 'DisplayName', runs{j, 1});
            end
        end
    end
    legend('show', 'Interpreter', 'none', 'Location', 'best');
"""

_WIDE = """\
    s = data.(tags{k, 2});
    for j = 1:size(s.value, 2)          % one column per run; NaN where a run has no point
        ok = logical(s.logged(:, j));   % its own points (runs logged at other steps
        plot(s.step(ok), s.value(ok, j), 'DisplayName', s.runs{j});  % would draw nothing)
    end
    legend('show', 'Interpreter', 'none', 'Location', 'best');
"""

_END = """\
    title(tags{k, 1}, 'Interpreter', 'none');
    xlabel('step');
    grid on;
    hold off;
end
"""


def script(mat_path: Path, runs: int, options: WriteOptions) -> str:
    """The text of the ``.m`` file for ``mat_path``."""
    if options.layout == "wide":
        body = _WIDE
    elif runs > 1:
        body = _RUNS
    else:
        body = _SINGLE
    # the name goes into MATLAB string literals, where a quote is written twice
    return _LOAD.format(mat=mat_path.name.replace("'", "''")) + body + _END
