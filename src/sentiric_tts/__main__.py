from sentiric_tts.cli import main

raise SystemExit(main())
