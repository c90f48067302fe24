from evoplastic.cli import main

raise SystemExit(main())
